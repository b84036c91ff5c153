use super::service::Stamp;

crate::gate::response_future! {
    /// Response future of [`Throttle`](super::Throttle).
    Option<Stamp>
}
