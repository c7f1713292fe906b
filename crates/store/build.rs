// The migrations are embedded by `sqlx::migrate!` at compile time: a new
// or changed file must rebuild this crate (what `sqlx migrate build-script`
// writes), or an incremental build keeps serving the old set.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
