use crate::context::ApiKeyIdentity;

crate::gate::response_future! {
    /// Response future of [`ApiKey`](super::ApiKey).
    Option<ApiKeyIdentity>
}
