//! What the layers learned about an MCP (JSON-RPC) request body, so that no later layer parses it again.

use std::sync::Arc;

/// The JSON-RPC method of an MCP request and, for `tools/call`, the tool name, as read by the site layer from the
/// exact bytes the application receives. Inserted into the request extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonRpcCall {
    method: Arc<str>,
    tool: Option<Arc<str>>,
}

impl JsonRpcCall {
    /// A call of `method`, naming `tool` for `tools/call`.
    #[must_use]
    pub fn new(method: &str, tool: Option<&str>) -> Self {
        Self {
            method: method.into(),
            tool: tool.map(Into::into),
        }
    }

    /// The JSON-RPC method, e.g. `tools/call`.
    #[must_use]
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The tool name (`params.name`) of a `tools/call`.
    #[must_use]
    pub fn tool(&self) -> Option<&str> {
        self.tool.as_deref()
    }
}

/// The `id` of a JSON-RPC request, as a JSON-RPC error answer repeats it (`null` when it could not be read).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum JsonRpcId {
    /// A number id.
    Number(serde_json::Number),
    /// A string id.
    String(Box<str>),
    /// No id could be read (or the request had none).
    #[default]
    Null,
}
