//! Agent tokens, readiness, and what an unreachable database looks like.

use certfleet_store::{AgentName, StoreOptions};

use crate::harness::TestStore;

crate::on_both_backends!(
    token_authenticates_its_agent_and_nothing_else,
    ping_answers,
    bound_tokens_list_and_revoke,
    a_host_enrolls_once_until_revoked,
);

async fn token_authenticates_its_agent_and_nothing_else(t: TestStore) {
    let alpha = AgentName::new("alpha").expect("name");
    let beta = AgentName::new("beta").expect("name");
    let alpha_token = t.store.create_agent_token(&alpha).await.expect("token");
    let beta_token = t.store.create_agent_token(&beta).await.expect("token");

    let who = |token: String| {
        let store = t.store.clone();
        async move {
            store
                .authenticate_agent(&token)
                .await
                .expect("authenticates")
        }
    };
    assert_eq!(who(alpha_token.clone()).await, Some(alpha));
    assert_eq!(who(beta_token).await, Some(beta));

    let mut wrong = alpha_token.clone();
    let last = if wrong.ends_with('0') { '1' } else { '0' };
    wrong.pop();
    wrong.push(last);
    assert_eq!(who(wrong).await, None, "same lookup prefix, wrong secret");
    assert_eq!(who("cfa_".to_owned() + &"0".repeat(64)).await, None);
    assert_eq!(who("not-a-token".into()).await, None);
    assert_eq!(who(String::new()).await, None);
    assert!(AgentName::new("").is_err());
}

async fn bound_tokens_list_and_revoke(t: TestStore) {
    let agent = AgentName::new("fleet-eu1").expect("name");
    let token = t
        .store
        .create_token(&agent, Some("machine-1"))
        .await
        .expect("token");
    let credential = t
        .store
        .authenticate(&token)
        .await
        .expect("authenticates")
        .expect("known");
    assert_eq!(credential.host_key.as_deref(), Some("machine-1"));
    let listed = t.store.tokens().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].agent, "fleet-eu1");
    assert_eq!(listed[0].revoked_at, None);

    assert_eq!(t.store.revoke_tokens(&agent).await.expect("revoke"), 1);
    assert_eq!(t.store.authenticate(&token).await.expect("asks"), None);
    assert!(t.store.tokens().await.expect("list")[0]
        .revoked_at
        .is_some());
    assert_eq!(t.store.revoke_tokens(&agent).await.expect("revoke"), 0);
}

async fn a_host_enrolls_once_until_revoked(t: TestStore) {
    let agent = AgentName::new("enrolled:machine-1").expect("name");
    let first = t.store.enroll(&agent, "machine-1").await.expect("enrolls");
    let first = first.expect("the first enrollment gets a token");
    let again = t.store.enroll(&agent, "machine-1").await.expect("asks");
    assert_eq!(again, None, "a second enrollment of a host gets nothing");
    let other = AgentName::new("enrolled:machine-2").expect("name");
    assert!(t
        .store
        .enroll(&other, "machine-2")
        .await
        .expect("asks")
        .is_some());

    t.store.revoke_tokens(&agent).await.expect("revoke");
    assert_eq!(t.store.authenticate(&first).await.expect("asks"), None);
    let renewed = t.store.enroll(&agent, "machine-1").await.expect("asks");
    let renewed = renewed.expect("after revocation the host enrolls again");
    let credential = t.store.authenticate(&renewed).await.expect("asks");
    assert_eq!(
        credential.and_then(|c| c.host_key),
        Some("machine-1".to_owned())
    );
}

async fn ping_answers(t: TestStore) {
    t.store.ping().await.expect("ping");
}

#[tokio::test]
async fn unreachable_database_is_unavailable() {
    let options = StoreOptions {
        acquire_timeout: std::time::Duration::from_secs(2),
        ..StoreOptions::default()
    };
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let url = "postgres://postgres@127.0.0.1:1/postgres";
    let error = certfleet_store::connect(url, options)
        .await
        .expect_err("refused");
    assert!(error.is_unavailable(), "{error:?}");
}

#[tokio::test]
async fn unknown_url_scheme_is_invalid() {
    let error = certfleet_store::connect("mysql://x", StoreOptions::default()).await;
    assert!(
        matches!(error, Err(certfleet_store::Error::Invalid { field, .. }) if field == "database.url")
    );
}
