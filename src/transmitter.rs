//! The transmitter role: SSF metadata, stream management, event fan-out, the durable outbox,
//! push delivery (RFC 8935) and poll delivery (RFC 8936).

pub mod push_target;
