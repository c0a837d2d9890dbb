//! Server-rendered HTML pages (maud). They work without JavaScript.

pub mod certificates;
pub mod dashboard;
pub mod endpoints;
mod layout;
pub mod search;
