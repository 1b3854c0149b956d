//! Baseline: a plain actix-web server with the demo's `/` and `/json`.
//! `actix ADDR WORKERS`.

use actix_web::{App, HttpResponse, HttpServer, get, http::header::ContentType};

#[get("/")]
async fn plaintext() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::plaintext())
        .body("Hello, World!")
}

#[get("/json")]
async fn json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(r#"{"message":"Hello, World!"}"#)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8001".into());
    let workers = args.next().and_then(|w| w.parse().ok()).unwrap_or(2);
    HttpServer::new(|| App::new().service(plaintext).service(json))
        .workers(workers)
        .bind(addr)?
        .run()
        .await
}
