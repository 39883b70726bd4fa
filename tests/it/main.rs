//! Integration tests: one test binary (one link step), one module per area.
mod jose;
