//! SASL (placeholder during development)
