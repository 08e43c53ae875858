//! API errors: one table of codes, each with its HTTP status. MLflow endpoints answer in MLflow's
//! shape, `{"error_code": ..., "message": ...}`, with the status MLflow gives that code, so the
//! client reacts as it would to MLflow (e.g. it retries 5xx, so a client mistake is never 5xx).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kairo_store::StoreError;

/// Stable error codes (MLflow's names, which Kairo's own API uses too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidParameterValue,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    EndpointNotFound,
    /// A body above the server's limit (413).
    TooLarge,
    /// Refused whatever the parameters (403): a cross-site browser request, or a role that
    /// does not allow it.
    PermissionDenied,
    /// No credentials, or credentials that are not valid (401).
    Unauthenticated,
    /// Too many failed authentications from one source (429).
    RequestLimitExceeded,
    Internal,
}

impl Code {
    pub fn name(self) -> &'static str {
        match self {
            Code::InvalidParameterValue => "INVALID_PARAMETER_VALUE",
            Code::ResourceAlreadyExists => "RESOURCE_ALREADY_EXISTS",
            Code::ResourceDoesNotExist => "RESOURCE_DOES_NOT_EXIST",
            Code::EndpointNotFound => "ENDPOINT_NOT_FOUND",
            // MLflow has no code of its own for these statuses; its client raises on any 4xx
            // with the code it is given, so they use codes it knows.
            Code::TooLarge => "BAD_REQUEST",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::RequestLimitExceeded => "REQUEST_LIMIT_EXCEEDED",
            Code::Internal => "INTERNAL_ERROR",
        }
    }

    /// The name in Kairo's own API (`/api/v1`).
    pub fn v1_name(self) -> &'static str {
        match self {
            Code::InvalidParameterValue => "invalid_parameter",
            Code::ResourceAlreadyExists => "already_exists",
            Code::ResourceDoesNotExist => "not_found",
            Code::EndpointNotFound => "endpoint_not_found",
            Code::TooLarge => "too_large",
            Code::PermissionDenied => "permission_denied",
            Code::Unauthenticated => "unauthenticated",
            Code::RequestLimitExceeded => "too_many_requests",
            Code::Internal => "internal",
        }
    }

    /// As MLflow's `ERROR_CODE_TO_HTTP_STATUS` (RESOURCE_ALREADY_EXISTS is 400 there, not 409).
    pub fn status(self) -> StatusCode {
        match self {
            Code::InvalidParameterValue | Code::ResourceAlreadyExists => StatusCode::BAD_REQUEST,
            Code::ResourceDoesNotExist | Code::EndpointNotFound => StatusCode::NOT_FOUND,
            Code::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::RequestLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError { code: Code::InvalidParameterValue, message: message.into() }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError { code: Code::ResourceDoesNotExist, message: message.into() }
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError { code: Code::TooLarge, message: message.into() }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let code = match &e {
            StoreError::NotFound(_) | StoreError::Missing(_) => Code::ResourceDoesNotExist,
            StoreError::AlreadyExists(_) => Code::ResourceAlreadyExists,
            StoreError::Invalid(_) => Code::InvalidParameterValue,
            _ if e.is_unstorable_text() => {
                return ApiError::invalid(
                    "A text value holds a character the database cannot store (such as NUL, \\u0000); remove it",
                );
            }
            _ => Code::Internal,
        };
        ApiError { code, message: e.to_string() }
    }
}

impl From<kairo_card::CardError> for ApiError {
    fn from(e: kairo_card::CardError) -> Self {
        match e {
            kairo_card::CardError::Registry(r) => r.into(),
            kairo_card::CardError::Store(s) => s.into(),
            other => ApiError { code: Code::Internal, message: other.to_string() },
        }
    }
}

impl From<kairo_registry::RegistryError> for ApiError {
    fn from(e: kairo_registry::RegistryError) -> Self {
        use kairo_registry::RegistryError as R;
        let code = match e {
            R::Store(s) => return s.into(),
            R::PermissionDenied(_) => Code::PermissionDenied,
            R::NotFound(_) => Code::ResourceDoesNotExist,
            R::Invalid(_) | R::Model(_) | R::Rollout(_) | R::KindColumn { .. } => Code::InvalidParameterValue,
            // Reading the project's files and judging a model on its holdout: the server's
            // configuration or data, never the client's request.
            R::Data(_)
            | R::Io { .. }
            | R::Frame(_)
            | R::Csv { .. }
            | R::CsvRow { .. }
            | R::ProfileData(_)
            | R::NoDataTarget { .. }
            | R::DataWidth { .. }
            | R::InputsNotColumns { .. }
            | R::NoHoldout
            | R::NoHoldoutTarget(_)
            | R::EmptyHoldout
            | R::HoldoutTooSmall
            | R::NoInputColumn(_)
            | R::HoldoutWidth { .. }
            | R::InputType { .. }
            | R::NotANumber { .. }
            | R::NotAnInteger { .. }
            | R::TargetNotANumber { .. }
            | R::Tensor(_)
            | R::Inference(_)
            | R::NoOutputs
            | R::NoLabelOutput
            | R::NoProbabilityOutput
            | R::MetricForRegressor(_)
            | R::MetricForClassifier(_)
            | R::MetricBinaryOnly(_)
            | R::MetricConstantTarget(_)
            | R::MetricOneClass(_) => Code::Internal,
        };
        ApiError { code, message: e.to_string() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error_code": self.code.name(), "message": self.message});
        (self.code.status(), axum::Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
