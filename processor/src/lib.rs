//! ids-processor library.
