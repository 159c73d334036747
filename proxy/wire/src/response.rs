//! The OTLP export responses of all four signals, which share one shape: field 1 is
//! `partial_success`, whose field 1 is the rejected count and field 2 the message.

/// `Export{Trace,Metrics,Logs,Profiles}ServiceResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportResponse {
    /// Absent when everything was accepted.
    #[prost(message, optional, tag = "1")]
    pub partial_success: Option<ExportPartialSuccess>,
}

/// `Export{Trace,Metrics,Logs,Profiles}PartialSuccess`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportPartialSuccess {
    /// `rejected_spans`, `rejected_data_points`, `rejected_log_records` or `rejected_profiles`.
    #[prost(int64, tag = "1")]
    pub rejected: i64,
    /// Why.
    #[prost(string, tag = "2")]
    pub error_message: String,
}
