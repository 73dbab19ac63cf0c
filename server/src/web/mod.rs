//! HTTP: every route, one module per resource, and what all requests share.
//!
//! | module | what it serves |
//! | --- | --- |
//! | [`sockets`] | `/ws/play`, `/ws/leaderboard`: the Origin check and the frame guard in front of the actors |
//! | [`images`] | `/images/{id}` bytes, `/api/images/{id}` metadata and labels |
//! | [`boards`] | `/api/leaderboard`, `/api/leaderboards/{board}`, `/api/stats` |
//! | [`accounts`] | `POST /api/login` |
//! | [`history`] | `/api/me/labels`, `/api/me/versus-model` |
//! | [`uploads`] | `/api/consent`, `/api/uploads…`, `/api/faces/preview` |
//! | [`filters`] | `POST /api/filters` |
//! | [`moderation`] | `/api/moderation/*` |
//! | [`admin`] | `POST /api/admin/model` |
//! | [`probes`] | `/healthz`, `/readyz`, `/metrics` |
//! | [`pages`] | the web client's files |
//! | [`openapi`] | `/api/openapi.json`, built from the handlers' annotations |
//! | [`errors`] | the one `{code, message}` error contract, extractor errors, 404/405 |
//! | [`extract`] | `Caller`, `ModeratorCaller`, `AdminCaller`, `MaybeCaller` |
//! | [`hygiene`] | per-address connection limit, body deadline, security headers |

pub mod accounts;
pub mod admin;
pub mod boards;
pub mod errors;
pub mod extract;
pub mod filters;
pub mod history;
pub mod hygiene;
pub mod images;
pub mod me;
pub mod models;
pub mod moderation;
pub mod openapi;
pub mod pages;
pub mod probes;
pub mod sockets;
pub mod uploads;

use actix_web::http::Method;
use actix_web::web;
use utoipa_actix_web::service_config::ServiceConfig;

pub use errors::ApiError;

/// Registers every route (and with it, its OpenAPI description).
pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(sockets::play_socket)
        .service(sockets::board_socket)
        .service(images::image_bytes)
        .service(images::image_meta)
        .service(images::image_labels)
        .service(history::my_labels)
        .service(me::export)
        .service(history::versus_model)
        .service(boards::all_time_board)
        .service(boards::global_board)
        .service(boards::counts)
        .service(accounts::login)
        .service(accounts::register)
        .service(accounts::change_password)
        .service(uploads::consent_text)
        .service(uploads::create_upload)
        .service(uploads::list_uploads)
        .service(uploads::show_upload)
        .service(uploads::delete_upload)
        .service(uploads::label_upload)
        .service(uploads::face_preview)
        .service(filters::filter_preview)
        .service(admin::swap_model)
        .service(models::list_models)
        .service(models::rollback_model)
        .service(models::promote_model)
        .service(moderation::review_queue)
        .service(moderation::moderate_image)
        .service(moderation::moderate_player)
        .service(moderation::set_role)
        .service(moderation::reliability_table)
        .service(moderation::audit_log)
        .service(moderation::dataset_charts)
        .service(probes::healthz)
        .service(probes::readyz)
        .service(probes::metrics_page)
        .service(openapi::openapi_document)
        .service(pages::page_index)
        .service(pages::page_file);
}

/// How request bodies, query strings and paths that do not parse are answered.
pub fn extractor_config(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(errors::json_error),
    )
    .app_data(web::QueryConfig::default().error_handler(errors::query_error))
    .app_data(web::PathConfig::default().error_handler(errors::path_error))
    .app_data(web::PayloadConfig::default().limit(64 * 1024));
}

/// The routes as (path template, methods), from the OpenAPI document: what
/// tells `404` from `405`, and what the authorization matrix test covers.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<(Vec<String>, Vec<Method>)>,
}

impl RouteTable {
    pub fn from_openapi(api: &utoipa::openapi::OpenApi) -> RouteTable {
        let routes = api
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let mut methods = Vec::new();
                for (m, present) in [
                    (Method::GET, item.get.is_some()),
                    (Method::POST, item.post.is_some()),
                    (Method::PUT, item.put.is_some()),
                    (Method::DELETE, item.delete.is_some()),
                    (Method::PATCH, item.patch.is_some()),
                ] {
                    if present {
                        methods.push(m);
                    }
                }
                (segments(path), methods)
            })
            .collect();
        RouteTable { routes }
    }

    /// The methods served at `path` (empty: no route has this path).
    pub fn methods_for(&self, path: &str) -> Vec<&'static str> {
        let want = segments(path);
        let mut out: Vec<&'static str> = Vec::new();
        for (template, methods) in &self.routes {
            let fits = template.len() == want.len()
                && template
                    .iter()
                    .zip(&want)
                    .all(|(t, w)| (t.starts_with('{') && !w.is_empty()) || t == w);
            if fits {
                for m in methods {
                    let name = method_name(m);
                    if !out.contains(&name) {
                        out.push(name);
                    }
                }
            }
        }
        out
    }
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        _ => "GET",
    }
}

fn segments(path: &str) -> Vec<String> {
    path.trim_start_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_paths_segment_by_segment() {
        let t = RouteTable {
            routes: vec![
                (
                    segments("/api/uploads/{id}"),
                    vec![Method::GET, Method::DELETE],
                ),
                (segments("/api/uploads"), vec![Method::GET, Method::POST]),
                (segments("/{file}"), vec![Method::GET]),
            ],
        };
        assert_eq!(t.methods_for("/api/uploads/abc"), vec!["GET", "DELETE"]);
        assert_eq!(t.methods_for("/api/uploads"), vec!["GET", "POST"]);
        assert_eq!(t.methods_for("/board.html"), vec!["GET"]);
        assert!(t.methods_for("/api/nothing/here").is_empty());
        assert!(t.methods_for("/api/uploads/").is_empty());
    }
}
