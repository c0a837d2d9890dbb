//! One module per resource.

pub mod health;
pub mod reports;
