//! `ids-model`: train, evaluate and inspect IDS Stream models. All logic is in
//! [`ids_models::cli`] so tests exercise the same code.
fn main() {
    std::process::exit(ids_models::cli::main_with(std::env::args_os()));
}
