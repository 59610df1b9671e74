//! How one family is written with `prometheus-client`: a single counter, a
//! single gauge, or a family with one label. Every value is read at scrape
//! time, so the families are `Const*` metrics made on the spot.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// A counter of events (`u64`) or of seconds (`f64`).
pub(super) fn counter<N>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: N,
) -> std::fmt::Result
where
    ConstCounter<N>: EncodeMetric,
{
    ConstCounter::new(v).encode(enc.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?)
}

pub(super) fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: i64,
) -> std::fmt::Result {
    ConstGauge::new(v).encode(enc.encode_descriptor(
        name,
        help,
        None,
        ConstGauge::<i64>::new(0).metric_type(),
    )?)
}

pub(super) fn labelled<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (String, M)>,
    ty: prometheus_client::metrics::MetricType,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, ty)?;
    for (l, v) in values {
        let labels = [(label.to_owned(), l)];
        v.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}
