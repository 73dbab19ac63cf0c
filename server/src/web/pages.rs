//! The web client's files, built into the binary (no build step).

use actix_web::http::header::{self, ContentType};
use actix_web::{HttpResponse, get, web};

use crate::error::ErrorCode;
use crate::web::errors::ApiError;
use crate::web::openapi::ErrorBody;

const INDEX: &str = include_str!("../../../web-client/index.html");
const PLAY_JS: &str = include_str!("../../../web-client/play.js");
const STYLE: &str = include_str!("../../../web-client/style.css");
const BOARD: &str = include_str!("../../../web-client/board.html");
const BOARD_JS: &str = include_str!("../../../web-client/board.js");
const BOARD_LOGIC_JS: &str = include_str!("../../../web-client/board-logic.js");
const MOD: &str = include_str!("../../../web-client/mod.html");
const MOD_JS: &str = include_str!("../../../web-client/mod.js");
const MOD_LOGIC_JS: &str = include_str!("../../../web-client/mod-logic.js");
const CONTRIBUTE: &str = include_str!("../../../web-client/contribute.html");
const CONTRIBUTE_JS: &str = include_str!("../../../web-client/contribute.js");
const CONTRIBUTE_LOGIC_JS: &str = include_str!("../../../web-client/contribute-logic.js");

/// The play page.
#[utoipa::path(tag = "web client", responses((status = 200, description = "The play page", content_type = "text/html")))]
#[get("/")]
pub async fn page_index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(INDEX)
}

/// A file of the web client (`board.html`, `contribute.html`, `mod.html`, scripts, style).
#[utoipa::path(
    tag = "web client",
    params(("file" = String, Path, description = "e.g. `board.html`")),
    responses(
        (status = 200, description = "The file", content_type = "text/html"),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
#[get("/{file}")]
pub async fn page_file(path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (body, mime) = match path.as_str() {
        "index.html" => (INDEX, "text/html; charset=utf-8"),
        "play.js" => (PLAY_JS, "text/javascript; charset=utf-8"),
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        "board.html" => (BOARD, "text/html; charset=utf-8"),
        "board.js" => (BOARD_JS, "text/javascript; charset=utf-8"),
        "board-logic.js" => (BOARD_LOGIC_JS, "text/javascript; charset=utf-8"),
        "mod.html" => (MOD, "text/html; charset=utf-8"),
        "mod.js" => (MOD_JS, "text/javascript; charset=utf-8"),
        "mod-logic.js" => (MOD_LOGIC_JS, "text/javascript; charset=utf-8"),
        "contribute.html" => (CONTRIBUTE, "text/html; charset=utf-8"),
        "contribute.js" => (CONTRIBUTE_JS, "text/javascript; charset=utf-8"),
        "contribute-logic.js" => (CONTRIBUTE_LOGIC_JS, "text/javascript; charset=utf-8"),
        _ => return Err(ApiError::code(ErrorCode::NotFound)),
    };
    Ok(HttpResponse::Ok()
        .content_type(mime)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body))
}
