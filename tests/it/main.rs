//! Integration tests: one test binary (one link step), one module per area.

mod cli;
mod common;
mod conformance_transmitter;
mod jose;
mod protocol;
mod receiver_double;
mod spec_fixtures;
mod transmitter_smoke;
