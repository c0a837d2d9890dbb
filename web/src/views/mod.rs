//! Server-rendered HTML pages (maud). They work without JavaScript; every list is a page
//! at a time with a "Next page" link.

pub mod certificate;
pub mod certificates;
pub mod dashboard;
pub mod endpoint;
pub mod endpoints;
mod layout;
pub mod mtls;
pub mod notifications;
pub mod owners;
pub mod probe;
pub mod probers;
pub mod search;
