//! Writes every target's seeds (from the bad-input catalogue) to `corpus/<target>/`.
//!
//! `cargo run --manifest-path crates/ksalloc-fuzz/Cargo.toml --example seeds [-- <out dir>]`
//! (default: the `corpus/` beside this crate's manifest). Existing `cat-*`, `item-*`,
//! `good-*`, `story-*` files are replaced; files libFuzzer added are left alone.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let out = std::env::args().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus"),
        PathBuf::from,
    );
    let mut total = 0;
    for (target, seeds) in ksalloc_fuzz::seeds::all() {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir)?;
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
        }
        println!("{target}: {} seeds -> {}", seeds.len(), dir.display());
        total += seeds.len();
    }
    println!("{total} seeds");
    Ok(())
}
