//! Integration tests: one test binary (one link step), one module per area.

mod auth;
mod cli;
mod common;
mod conformance_receiver;
mod conformance_transmitter;
mod crash;
mod end_to_end;
mod jose;
mod protocol;
mod receiver_double;
mod receiver_manage;
mod receiver_push;
mod sessions;
mod spec_fixtures;
mod storage;
mod transmitter_double;
mod transmitter_smoke;
