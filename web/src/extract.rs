//! Extractors whose rejections are JSON [`ApiError`]s naming the bad parameter.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// `Query<T>`, but a bad or unknown parameter answers a JSON 400 that names it. A value
/// (or name) holding a NUL character is bad too: no search can match one, and PostgreSQL
/// refuses it in text (which would otherwise surface as a 500).
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Ok(Query(pairs)) =
            Query::<Vec<(String, String)>>::from_request_parts(parts, state).await
        {
            if let Some((name, _)) = pairs
                .iter()
                .find(|(name, value)| name.contains('\0') || value.contains('\0'))
            {
                let message = format!("{name}: must not contain NUL characters");
                return Err(ApiError::bad_request(message, Some(name.clone())));
            }
        }
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => {
                let message = rejection.body_text();
                Err(ApiError::bad_request(message.clone(), field_in(&message)))
            }
        }
    }
}

/// serde names the field between backticks: "unknown field `foo`, expected ...".
fn field_in(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let length = message[start..].find('`')?;
    Some(message[start..start + length].to_owned())
}

#[cfg(test)]
mod tests {
    use axum::extract::FromRequestParts;
    use axum::http::Request;
    use serde::Deserialize;

    use super::ApiQuery;
    use crate::ApiError;

    #[derive(Debug, Deserialize)]
    struct Search {
        #[allow(dead_code)]
        app: Option<String>,
    }

    async fn extract(uri: &str) -> Result<ApiQuery<Search>, ApiError> {
        let (mut parts, ()) = Request::get(uri).body(()).expect("a request").into_parts();
        ApiQuery::<Search>::from_request_parts(&mut parts, &()).await
    }

    #[tokio::test]
    async fn a_nul_in_a_parameter_is_a_bad_request_naming_it() {
        assert!(extract("/x?app=billing").await.is_ok());
        match extract("/x?app=bill%00ing").await {
            Err(ApiError::BadRequest { field, .. }) => assert_eq!(field.as_deref(), Some("app")),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("a NUL was accepted"),
        }
    }
}
