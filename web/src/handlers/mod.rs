//! One module per resource.

pub mod certificates;
pub mod endpoints;
pub mod enroll;
pub mod health;
pub mod mtls;
pub mod notifications;
pub mod openapi;
pub mod osquery;
pub mod params;
pub mod probe;
pub mod probers;
pub mod reports;
