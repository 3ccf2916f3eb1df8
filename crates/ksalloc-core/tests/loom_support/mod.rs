//! What every loom model file shares.

/// Checks `f` under every interleaving within the preemption bound (unless
/// `LOOM_MAX_PREEMPTIONS` sets one), and prints how many executions that took
/// (`--nocapture` shows it).
pub fn model(preemption_bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    // The magazine models run a dozen frames through setup before their threads start:
    // more schedule points than loom's default limit of 1000 per execution.
    builder.max_branches = builder.max_branches.max(10_000);
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemption_bound);
    }
    let executions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&executions);
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    println!(
        "{} executions, preemption bound {:?}",
        executions.load(std::sync::atomic::Ordering::Relaxed),
        builder.preemption_bound
    );
}
