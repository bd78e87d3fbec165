//! The backend contract, against the in-memory backend.

snakepit_shared::backend_contract_tests!(((), snakepit_shared::MemoryBackend::new()));
