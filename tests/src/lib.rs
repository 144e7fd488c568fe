//! Test harness: broker and process helpers for the end-to-end tests.
