//! ids-producer library.
