//! Agent tokens, readiness, and what an unreachable database looks like.

use certfleet_store::{AgentName, StoreOptions};

use crate::harness::TestStore;

crate::on_both_backends!(token_authenticates_its_agent_and_nothing_else, ping_answers);

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
