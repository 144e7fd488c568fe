//! Shared service plumbing.
