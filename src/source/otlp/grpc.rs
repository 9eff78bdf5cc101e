//! The OTLP/gRPC `LogsService/Export` endpoint, served by tonic with a codec of our own: it decodes
//! the request as prost does and, when prost refuses it for an invalid UTF-8 string, repairs the
//! strings (`super::utf8`, through `Handler::decode_protobuf`) and counts them, as the HTTP endpoint does, rather than refusing the whole
//! request. The generated `LogsServiceServer` hard-wires prost's codec; this is the same routing,
//! with that one difference.

use std::sync::Arc;
use std::task::{Context, Poll};

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, ProstCodec};
use tonic::codegen::{http, Body, BoxFuture, StdError};

use super::{Failure, Grpc};
use crate::source::intake::Refused;

/// The service's full name, as clients call it.
const SERVICE: &str = "opentelemetry.proto.collector.logs.v1.LogsService";
const EXPORT: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// `LogsService` on tonic's server, gzip accepted, requests up to `max_size` bytes.
#[derive(Clone)]
pub struct LogsServer {
    handler: Arc<Grpc>,
    max_size: usize,
}

impl LogsServer {
    pub fn new(handler: Grpc, max_size: usize) -> Self {
        LogsServer {
            handler: Arc::new(handler),
            max_size,
        }
    }
}

impl tonic::server::NamedService for LogsServer {
    const NAME: &'static str = SERVICE;
}

impl<B> tonic::codegen::Service<http::Request<B>> for LogsServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXPORT {
            return Box::pin(async move {
                let mut response = http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert(
                    tonic::Status::GRPC_STATUS,
                    (tonic::Code::Unimplemented as i32).into(),
                );
                headers.insert(
                    http::header::CONTENT_TYPE,
                    tonic::metadata::GRPC_CONTENT_TYPE,
                );
                Ok(response)
            });
        }
        let export = Export(self.handler.clone());
        let codec = RepairingCodec {
            handler: self.handler.clone(),
            max_size: self.max_size,
        };
        let mut accept = tonic::codec::EnabledCompressionEncodings::default();
        accept.enable(tonic::codec::CompressionEncoding::Gzip);
        // The size limit is the decoder's, so that a request over it hears RESOURCE_EXHAUSTED (as
        // OTLP asks) rather than tonic's OUT_OF_RANGE; tonic's own limit only bounds the buffer.
        let mut grpc = tonic::server::Grpc::new(codec)
            .apply_compression_config(accept, Default::default())
            .apply_max_message_size_config(Some(self.max_size.saturating_mul(2)), None);
        Box::pin(async move { Ok(grpc.unary(export, req).await) })
    }
}

/// The one method.
struct Export(Arc<Grpc>);

impl tonic::server::UnaryService<ExportLogsServiceRequest> for Export {
    type Response = ExportLogsServiceResponse;
    type Future = BoxFuture<tonic::Response<Self::Response>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<ExportLogsServiceRequest>) -> Self::Future {
        let handler = self.0.clone();
        Box::pin(async move {
            let request = request.into_inner();
            let bytes = request.encoded_len();
            match handler.0.export(request, bytes, &handler.1).await {
                Ok(answer) => Ok(tonic::Response::new(answer)),
                Err(Failure::Refused(Refused::Full)) => {
                    Err(tonic::Status::unavailable("the sinks are full; retry"))
                }
                Err(_) => Err(tonic::Status::unavailable(
                    "the records could not be made safe (the agent is stopping or a sink gave up); retry",
                )),
            }
        })
    }
}

/// prost's codec, with a decoder that repairs invalid UTF-8 and refuses requests over `max_size`.
struct RepairingCodec {
    handler: Arc<Grpc>,
    max_size: usize,
}

type Prost = ProstCodec<ExportLogsServiceResponse, ExportLogsServiceRequest>;

impl Codec for RepairingCodec {
    type Encode = ExportLogsServiceResponse;
    type Decode = ExportLogsServiceRequest;
    type Encoder = <Prost as Codec>::Encoder;
    type Decoder = RepairingDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        Prost::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RepairingDecoder {
            handler: self.handler.clone(),
            max_size: self.max_size,
        }
    }
}

struct RepairingDecoder {
    handler: Arc<Grpc>,
    max_size: usize,
}

impl Decoder for RepairingDecoder {
    type Item = ExportLogsServiceRequest;
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        use bytes::Buf;
        if buf.remaining() > self.max_size {
            let why = format!(
                "the request is larger than max_recv_msg_size ({} bytes)",
                self.max_size
            );
            self.handler.0.refuse(&Failure::TooLarge(why.clone()));
            return Err(tonic::Status::resource_exhausted(why));
        }
        let body = buf.copy_to_bytes(buf.remaining());
        self.handler
            .0
            .decode_protobuf(&body)
            .map(Some)
            .map_err(|why| {
                let why = match why {
                    Failure::Malformed(why) | Failure::TooLarge(why) => why,
                    Failure::Refused(_) => "refused".into(),
                };
                self.handler.0.refuse(&Failure::Malformed(why.clone()));
                tonic::Status::invalid_argument(why)
            })
    }
}
