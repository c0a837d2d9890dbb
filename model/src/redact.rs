//! The one way a URL with a password is shown (logs, `Debug`, messages): the password
//! becomes `***`, everything else stays, so an operator still sees where it points.

/// `postgres://user:secret@host/db` becomes `postgres://user:***@host/db`; a URL without a
/// password is returned as it is. The user info ends at the last `@` of the authority, so
/// a password holding `@` is hidden whole.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, after) = rest.split_at(authority_end);
    let Some((credentials, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}{after}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden_and_the_rest_is_kept() {
        let cases = [
            (
                "postgres://u:secret@db:5432/certfleet",
                "postgres://u:***@db:5432/certfleet",
            ),
            ("smtp://u:secret@mail:587", "smtp://u:***@mail:587"),
            ("smtps://u:p@ss@mail", "smtps://u:***@mail"),
            ("postgres://u@db/x?a=b@c", "postgres://u@db/x?a=b@c"),
            (
                "postgres://db/x?password=a@b",
                "postgres://db/x?password=a@b",
            ),
            ("smtp://mail:25", "smtp://mail:25"),
            ("sqlite://certfleet.db", "sqlite://certfleet.db"),
            ("not a url", "not a url"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
