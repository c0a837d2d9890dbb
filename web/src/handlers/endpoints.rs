//! `GET /api/v1/endpoints?address=&port=&app=&env=&owner=&mtls=&finding=&limit=&cursor=`,
//! `GET /api/v1/sockets?...` (the same filters) and `GET /api/v1/endpoints/{id}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use certfleet_store::{
    EndpointId, EndpointRecord, EndpointSearch, ReadModel, SocketRecord, WorkloadTags,
};
use serde::Deserialize;

use super::params::{id_cursor, parse_finding, parse_limit, parse_mtls, present, Page};
use crate::extract::ApiQuery;
use crate::responses;
use crate::{ApiError, AppState};

/// The parameters of endpoint lists, in the API and on the pages.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointQuery {
    pub address: Option<String>,
    pub port: Option<String>,
    pub app: Option<String>,
    pub env: Option<String>,
    pub owner: Option<String>,
    pub mtls: Option<String>,
    pub finding: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

impl EndpointQuery {
    /// The store search these parameters ask for.
    pub fn search(&self) -> Result<EndpointSearch, ApiError> {
        let bad =
            |field: &str, message: &str| ApiError::bad_request(message, Some(field.to_owned()));
        let address = match present(&self.address) {
            Some(raw) => Some(
                raw.parse()
                    .map_err(|_| bad("address", "address must be an IP address"))?,
            ),
            None => None,
        };
        let port = match present(&self.port) {
            Some(raw) => match raw.parse::<u16>() {
                Ok(port) if port > 0 => Some(port),
                _ => return Err(bad("port", "port must be a number from 1 to 65535")),
            },
            None => None,
        };
        Ok(EndpointSearch {
            address,
            port,
            tags: WorkloadTags {
                app: present(&self.app).map(str::to_owned),
                env: present(&self.env).map(str::to_owned),
                owner: present(&self.owner).map(str::to_owned),
            },
            mtls: present(&self.mtls).map(parse_mtls).transpose()?,
            finding: present(&self.finding).map(parse_finding).transpose()?,
            after: id_cursor(self.cursor.as_deref())?,
            limit: parse_limit(self.limit.as_deref())?,
            per_socket: false,
        })
    }
}

/// One page of an endpoint list.
pub async fn page(
    store: &Arc<dyn ReadModel>,
    search: &EndpointSearch,
) -> Result<Page<EndpointRecord>, ApiError> {
    let items = store.search_endpoints(search).await?;
    Ok(Page::new(items, search.limit, |endpoint| {
        search.key_of(endpoint).to_string()
    }))
}

pub async fn index(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EndpointQuery>,
) -> Result<Json<Page<responses::Endpoint>>, ApiError> {
    let search = query.search()?;
    Ok(Json(page(&state.reads, &search).await?.map(Into::into)))
}

/// One page of a socket list: each socket once, its names nested in it.
pub async fn socket_page(
    store: &Arc<dyn ReadModel>,
    search: &EndpointSearch,
) -> Result<Page<SocketRecord>, ApiError> {
    let items = store.search_sockets(search).await?;
    Ok(Page::new(items, search.limit, |socket| {
        search.key_of(&socket.endpoint).to_string()
    }))
}

/// `GET /api/v1/sockets`: what people count, each listening socket once.
pub async fn sockets(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EndpointQuery>,
) -> Result<Json<Page<responses::Socket>>, ApiError> {
    let search = query.search()?;
    Ok(Json(
        socket_page(&state.reads, &search).await?.map(Into::into),
    ))
}

/// An endpoint id from a path.
pub fn parse_id(raw: &str) -> Result<EndpointId, ApiError> {
    match raw.trim().parse::<i64>() {
        Ok(id) if id > 0 => Ok(EndpointId(id)),
        _ => Err(ApiError::bad_request(
            "id must be a positive number",
            Some("id".into()),
        )),
    }
}

pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<responses::EndpointDetail>, ApiError> {
    Ok(Json(state.reads.endpoint(parse_id(&id)?).await?.into()))
}
