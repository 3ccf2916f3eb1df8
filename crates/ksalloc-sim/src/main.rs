//! ksalloc-sim: placeholder until the simulator lands.

fn main() {
    println!("ksalloc-sim: not yet");
}
