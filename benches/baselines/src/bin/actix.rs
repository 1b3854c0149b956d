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
    let (addr, workers) = ferricorn_baselines::args("127.0.0.1:8001");
    HttpServer::new(|| App::new().service(plaintext).service(json))
        .workers(workers)
        .bind(addr)?
        .run()
        .await
}
