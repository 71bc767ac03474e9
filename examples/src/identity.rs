//! What the examples' handlers answer: the `AuthContext` they were given, as JSON.

use portcullis::AuthContext;
use serde::{Deserialize, Serialize};

/// The caller as the application sees it, read from the [`AuthContext`] that the stack put on the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// The account id of the user (the token's subject).
    pub account_id: String,
    /// The site the request is bound to, if it named one.
    pub site_id: Option<String>,
    /// How the caller authenticated: `oauth`, `personal_api_token` or `service_account_key`.
    pub auth_method: String,
    /// The scopes the credential carries.
    pub scopes: Vec<String>,
    /// The keys of the products on the site that the user can use.
    pub products: Vec<String>,
}

impl From<&AuthContext> for Identity {
    fn from(context: &AuthContext) -> Self {
        let principal = context.principal();
        Self {
            account_id: context.user().account_id.clone(),
            site_id: context.site().map(|site| site.id().to_string()),
            auth_method: principal.method().as_str().to_owned(),
            scopes: principal.scopes().iter().map(str::to_owned).collect(),
            products: context.products().iter().map(|p| p.key.clone()).collect(),
        }
    }
}
