//! `sqlx::migrate!` embeds the migration files at compile time; this makes Cargo rebuild the crate when one of
//! them changes, so a binary never carries stale migrations.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
