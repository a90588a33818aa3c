//! Registering a binary's metrics: one line per metric, named after its field.

/// Registers fields of `$metrics` in the prometheus-client `$registry`, each under its own
/// field name with the help text beside it, so a metric's name and its field cannot drift
/// apart:
///
/// ```ignore
/// teiten_service::register_metrics!(registry, m, {
///     batches_stored: "Batches stored in ClickHouse",
///     insert_errors: "INSERT statements that failed",
/// });
/// ```
#[macro_export]
macro_rules! register_metrics {
    ($registry:expr, $metrics:expr, { $($field:ident: $help:expr),+ $(,)? }) => {
        $( $registry.register(stringify!($field), $help, $metrics.$field.clone()); )+
    };
}
