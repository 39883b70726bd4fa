//! Integration tests: one test binary (one link step), one module per area.

mod cli;
mod common;
mod jose;
mod protocol;
mod spec_fixtures;
mod storage;
mod transmitter_smoke;
