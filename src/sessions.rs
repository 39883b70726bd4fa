//! Session-time enforcement: applications register their sessions, received events change them
//! through the policy, and applications ask at request time whether a session may continue.
//! Decisions are answered from memory; every change is stored first (with the SET that caused
//! it, in one transaction) and audited.

pub mod admin;
pub mod api;
pub mod engine;
pub mod model;
pub mod policy;
pub mod webhook;

pub use engine::Engine;
