//! Agent tokens and readiness.

use certfleet_store::AgentName;

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
