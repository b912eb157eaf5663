//! RFC 9457 problem details (`application/problem+json`), the one error shape
//! of every HTTP answer in the system.

use axum_core::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const CONTENT_TYPE: &str = "application/problem+json";

/// One invalid input field: `field` is a path such as `items[0].quantity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    #[schema(example = "items[0].quantity")]
    pub field: String,
    #[schema(example = "must be an integer from 1 to 100")]
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An error answer (`application/problem+json`, RFC 9457). Problem types
/// may add members of their own (`current_prices` on `price-changed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type, e.g. `/problems/validation`.
    #[serde(rename = "type")]
    #[schema(example = "/problems/validation")]
    pub kind: String,
    #[schema(example = "Invalid request")]
    pub title: String,
    /// The HTTP status code of the answer.
    #[schema(minimum = 400, maximum = 599, example = 422)]
    pub status: u16,
    #[schema(example = "one or more fields are invalid")]
    pub detail: String,
    /// For `validation` (and `price-changed`): one entry per invalid field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The `X-Request-Id` of the request; always present on a 5xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Problem-specific members (for example `current_prices`).
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Map<String, Value>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("/problems/{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            request_id: None,
            extra: Map::new(),
        }
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut p = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Invalid request",
            "one or more fields are invalid",
        );
        p.errors = errors;
        p
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// The problem for an error answer that came without a body of its own:
    /// its type and title are the status's reason phrase.
    pub fn for_status(status: StatusCode) -> Self {
        if status == StatusCode::NOT_FOUND {
            return Self::not_found("no such resource");
        }
        let reason = status.canonical_reason().unwrap_or("Error");
        let kind = reason.to_ascii_lowercase().replace([' ', '\''], "-");
        let mut title = reason.to_ascii_lowercase();
        title[..1].make_ascii_uppercase();
        Self::new(
            status,
            &kind,
            &title,
            format!("the request failed ({status})"),
        )
    }

    /// A 5xx that says nothing about internals; the request id lets an operator
    /// find the logged cause.
    pub fn internal(request_id: Option<String>) -> Self {
        let mut p = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the request could not be completed; quote the request id when reporting it",
        );
        p.request_id = request_id;
        p
    }

    pub fn with_extra(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn with_request_id(mut self, request_id: Option<String>) -> Self {
        self.request_id = request_id;
        self
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        // Kept so the HTTP layers (`runtime::http`) can add the request id on the way out.
        response.extensions_mut().insert(self);
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
