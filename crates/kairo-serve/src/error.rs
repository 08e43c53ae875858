//! Why a request was refused, and the one table per protocol that says how it is answered.
//!
//! A handler says what went wrong as a [`RequestError`], whatever protocol it speaks. Each
//! protocol has its own table of codes, and each table maps its codes to HTTP statuses in one
//! `status` function:
//! - [`OipCode`] for the Open Inference Protocol (and `/v1/feedback`): `{"error": ..., "code": ...}`.
//!   OIP requires only `error` (tritonclient reads nothing else); `code` lets a client branch
//!   without parsing the message.
//! - [`MlflowCode`] for `/invocations`, MLflow's scoring protocol: `{"error_code": ..., "message": ...}`,
//!   with names from MLflow's `ErrorCode` enum (`databricks.proto`), so a client that parses
//!   the name as that enum can.
//!
//! Every error response of `kairo serve` is built by [`RequestError::oip`] or
//! [`RequestError::mlflow`].

use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use kairo_runtime::RuntimeError;

use crate::limits::Refusal;

/// What went wrong with a request, whatever protocol it came in. The message is the text a
/// client sees; it names the input, model or limit, and where possible the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body or a header cannot be read as the protocol says, or does not fit the model.
    #[error("{0}")]
    Invalid(String),
    /// A request parameter is wrong: `?model=` missing when several models are served, a
    /// version that is not a number, an output the model does not have.
    #[error("{0}")]
    Parameter(String),
    /// The model or version is not served here.
    #[error("{0}")]
    NotFound(String),
    /// No endpoint at this path.
    #[error("{0}")]
    NoEndpoint(String),
    /// The request, or its answer, exceeds a limit of this server (`kairo serve --max-*`).
    #[error("{0}")]
    TooLarge(String),
    /// The body's content type is not one the endpoint reads.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A cross-site browser request to an endpoint that changes state.
    #[error("{0}")]
    CrossSite(String),
    /// `--auth`: no token, or one that does not hold (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// `--auth`: the token's roles do not allow it (403).
    #[error("{0}")]
    Forbidden(String),
    /// The server failed: the model runtime, the store. Never a client mistake.
    #[error("{0}")]
    Internal(String),
}

impl From<Refusal> for RequestError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Bad(m) => RequestError::Invalid(m),
            Refusal::TooLarge(m) => RequestError::TooLarge(m),
        }
    }
}

impl From<&RuntimeError> for RequestError {
    fn from(e: &RuntimeError) -> Self {
        match e {
            RuntimeError::Input(_) => RequestError::Invalid(e.to_string()),
            _ => RequestError::Internal(e.to_string()),
        }
    }
}

impl From<BytesRejection> for RequestError {
    fn from(e: BytesRejection) -> Self {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            RequestError::TooLarge(
                "request body is larger than the server accepts (`kairo serve --max-body-mb`)".into(),
            )
        } else if status.is_server_error() {
            RequestError::Internal(e.body_text())
        } else {
            RequestError::Invalid(e.body_text())
        }
    }
}

impl RequestError {
    pub fn message(&self) -> &str {
        match self {
            RequestError::Invalid(m)
            | RequestError::Parameter(m)
            | RequestError::NotFound(m)
            | RequestError::NoEndpoint(m)
            | RequestError::TooLarge(m)
            | RequestError::UnsupportedMediaType(m)
            | RequestError::CrossSite(m)
            | RequestError::Unauthenticated(m)
            | RequestError::Forbidden(m)
            | RequestError::Internal(m) => m,
        }
    }

    /// The error in OIP's shape, with its status from [`OipCode::status`].
    pub fn oip(&self) -> Response {
        let code = OipCode::of(self);
        (code.status(), Json(serde_json::json!({"error": self.message(), "code": code.name()}))).into_response()
    }

    /// The error in MLflow's scoring-server shape, with its status from [`MlflowCode::status`].
    pub fn mlflow(&self) -> Response {
        let code = MlflowCode::of(self);
        (code.status(), Json(serde_json::json!({"error_code": code.name(), "message": self.message()}))).into_response()
    }
}

/// OIP's error codes (the `code` of `{"error", "code"}`), named as Kairo's own API names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OipCode {
    InvalidParameter,
    NotFound,
    EndpointNotFound,
    TooLarge,
    UnsupportedMediaType,
    PermissionDenied,
    /// `--auth` and no valid token (401).
    Unauthenticated,
    Internal,
}

impl OipCode {
    pub fn of(e: &RequestError) -> OipCode {
        match e {
            RequestError::Invalid(_) | RequestError::Parameter(_) => OipCode::InvalidParameter,
            RequestError::NotFound(_) => OipCode::NotFound,
            RequestError::NoEndpoint(_) => OipCode::EndpointNotFound,
            RequestError::TooLarge(_) => OipCode::TooLarge,
            RequestError::UnsupportedMediaType(_) => OipCode::UnsupportedMediaType,
            RequestError::CrossSite(_) | RequestError::Forbidden(_) => OipCode::PermissionDenied,
            RequestError::Unauthenticated(_) => OipCode::Unauthenticated,
            RequestError::Internal(_) => OipCode::Internal,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OipCode::InvalidParameter => "invalid_parameter",
            OipCode::NotFound => "not_found",
            OipCode::EndpointNotFound => "endpoint_not_found",
            OipCode::TooLarge => "too_large",
            OipCode::UnsupportedMediaType => "unsupported_media_type",
            OipCode::PermissionDenied => "permission_denied",
            OipCode::Unauthenticated => "unauthenticated",
            OipCode::Internal => "internal",
        }
    }

    /// As Triton maps its codes (INVALID_ARG → 400, NOT_FOUND → 404, INTERNAL → 500), plus the
    /// statuses HTTP has for limits and content types.
    pub fn status(self) -> StatusCode {
        match self {
            OipCode::InvalidParameter => StatusCode::BAD_REQUEST,
            OipCode::NotFound | OipCode::EndpointNotFound => StatusCode::NOT_FOUND,
            OipCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            OipCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            OipCode::PermissionDenied => StatusCode::FORBIDDEN,
            OipCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            OipCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// `/invocations` error codes: names from MLflow's `ErrorCode` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MlflowCode {
    /// A body that is not a scoring request, or does not fit the model (MLflow's scoring
    /// server uses BAD_REQUEST for both).
    BadRequest,
    /// A query parameter (`?model=`) is wrong.
    InvalidParameterValue,
    ResourceDoesNotExist,
    EndpointNotFound,
    /// A limit of this server (413). MLflow's table has no code for 413; this is `ErrorCode`'s
    /// name for a request refused because it would exceed a resource limit.
    ResourceLimitExceeded,
    /// A content type `/invocations` does not read (415). MLflow's own scoring server answers
    /// 415 in plain text, with no code; this is `ErrorCode`'s name for a request the API
    /// cannot take as sent.
    MalformedRequest,
    PermissionDenied,
    /// `--auth` and no valid token (401).
    Unauthenticated,
    InternalError,
}

impl MlflowCode {
    pub fn of(e: &RequestError) -> MlflowCode {
        match e {
            RequestError::Invalid(_) => MlflowCode::BadRequest,
            RequestError::Parameter(_) => MlflowCode::InvalidParameterValue,
            RequestError::NotFound(_) => MlflowCode::ResourceDoesNotExist,
            RequestError::NoEndpoint(_) => MlflowCode::EndpointNotFound,
            RequestError::TooLarge(_) => MlflowCode::ResourceLimitExceeded,
            RequestError::UnsupportedMediaType(_) => MlflowCode::MalformedRequest,
            RequestError::CrossSite(_) | RequestError::Forbidden(_) => MlflowCode::PermissionDenied,
            RequestError::Unauthenticated(_) => MlflowCode::Unauthenticated,
            RequestError::Internal(_) => MlflowCode::InternalError,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MlflowCode::BadRequest => "BAD_REQUEST",
            MlflowCode::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            MlflowCode::ResourceDoesNotExist => "RESOURCE_DOES_NOT_EXIST",
            MlflowCode::EndpointNotFound => "ENDPOINT_NOT_FOUND",
            MlflowCode::ResourceLimitExceeded => "RESOURCE_LIMIT_EXCEEDED",
            MlflowCode::MalformedRequest => "MALFORMED_REQUEST",
            MlflowCode::PermissionDenied => "PERMISSION_DENIED",
            MlflowCode::Unauthenticated => "UNAUTHENTICATED",
            MlflowCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// As MLflow's `ERROR_CODE_TO_HTTP_STATUS` for the codes it lists; 413 and 415 for the two
    /// it does not.
    pub fn status(self) -> StatusCode {
        match self {
            MlflowCode::BadRequest | MlflowCode::InvalidParameterValue => StatusCode::BAD_REQUEST,
            MlflowCode::ResourceDoesNotExist | MlflowCode::EndpointNotFound => StatusCode::NOT_FOUND,
            MlflowCode::ResourceLimitExceeded => StatusCode::PAYLOAD_TOO_LARGE,
            MlflowCode::MalformedRequest => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            MlflowCode::PermissionDenied => StatusCode::FORBIDDEN,
            MlflowCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            MlflowCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<RequestError> {
        let m = || "m".to_string();
        vec![
            RequestError::Invalid(m()),
            RequestError::Parameter(m()),
            RequestError::NotFound(m()),
            RequestError::NoEndpoint(m()),
            RequestError::TooLarge(m()),
            RequestError::UnsupportedMediaType(m()),
            RequestError::CrossSite(m()),
            RequestError::Unauthenticated(m()),
            RequestError::Forbidden(m()),
            RequestError::Internal(m()),
        ]
    }

    /// The same refusal has the same status whichever protocol it came in (metrics and the
    /// rollout guard count a shadow's failures by it), and only the server's own failures are 5xx.
    #[test]
    fn both_tables_give_a_refusal_the_same_status() {
        for e in every_kind() {
            let (oip, mlflow) = (OipCode::of(&e).status(), MlflowCode::of(&e).status());
            assert_eq!(oip, mlflow, "{e:?}");
            assert_eq!(oip.is_server_error(), matches!(e, RequestError::Internal(_)), "{e:?}");
        }
    }

    #[test]
    fn not_found_is_not_a_bad_request() {
        let e = RequestError::NotFound("model 'x' is not served here".into());
        assert_eq!((OipCode::of(&e).name(), OipCode::of(&e).status()), ("not_found", StatusCode::NOT_FOUND));
        assert_eq!(
            (MlflowCode::of(&e).name(), MlflowCode::of(&e).status()),
            ("RESOURCE_DOES_NOT_EXIST", StatusCode::NOT_FOUND)
        );
    }
}
