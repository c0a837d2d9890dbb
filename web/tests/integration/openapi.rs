//! The OpenAPI document matches the router: every documented path and method answers
//! (not 404, not 405), and every route of the router is documented.

use std::collections::BTreeSet;

use crate::support::http::send;
use crate::support::TestApp;

crate::on_both_backends!(openapi_document_matches_the_router);

async fn openapi_document_matches_the_router(app: TestApp) {
    let document = app.json("/api/v1/openapi.json").await;
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().expect("paths");
    let mut documented = BTreeSet::new();
    for (path, operations) in paths {
        for method in operations.as_object().expect("operations").keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routed: BTreeSet<(String, String)> = certfleet_web::routes()
        .into_iter()
        .map(|(method, path, _)| (method.to_owned(), path.to_owned()))
        .collect();
    assert_eq!(documented, routed, "documented routes == router routes");

    let fleet = &app.fleet;
    for (method, path) in &documented {
        let concrete = path
            .replace("{sha256}", &fleet.api.info.sha256)
            .replace("{id}", &fleet.api_endpoint.0.to_string())
            .replace("{owner}", "billing-team%40example.com");
        // Lists need one of their parameters; give what the document says they take.
        let concrete = match concrete.as_str() {
            "/api/v1/certificates" | "/certificates" => {
                format!("{concrete}?hostname=api.example.test")
            }
            other => other.to_owned(),
        };
        let response = send(app.address, method, &concrete, &[], b"{}").await;
        assert!(
            ![404, 405].contains(&response.status),
            "{method} {concrete} answered {}: {}",
            response.status,
            response.text()
        );
        let operation = &paths[path][method.to_lowercase()];
        let documented_statuses = operation["responses"].as_object().expect("responses");
        assert!(
            documented_statuses.contains_key(&response.status.to_string()),
            "{method} {concrete} answered {}, which the document does not list",
            response.status
        );
    }
}
