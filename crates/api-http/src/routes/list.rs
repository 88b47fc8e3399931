//! Lists: `skip`, `limit`, `sort_by` and `sort_order` in the query string, the items as a
//! JSON array and the size of the whole list in `X-Total-Count`.

use actix_web::HttpResponse;
use ports::{Page, PageRequest, PageRequestError, Sort, SortDirection};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use super::invalid;
use crate::ApiError;

/// The header that carries the number of items of the whole list.
pub(crate) const TOTAL_COUNT_HEADER: &str = "x-total-count";
/// Items per page when the request names no limit.
const DEFAULT_LIMIT: u64 = 50;

/// Which page of a list, in which order.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Items to skip, at most 100000.
    skip: Option<u64>,
    /// Items to return, 1 to 100 (50 by default).
    limit: Option<u64>,
    /// The field to sort by (each list names its fields).
    sort_by: Option<String>,
    /// `asc` (default) or `desc`.
    sort_order: Option<String>,
}

/// The sortable fields of a list, by their API names; the first is the default.
pub(crate) trait SortKey: Copy + 'static {
    const KEYS: &'static [(&'static str, Self)];
}

/// `skip` and `limit` as given or by default, checked against the bounds of every list.
pub(crate) fn skip_and_limit(
    skip: Option<u64>,
    limit: Option<u64>,
) -> Result<(u64, u64), ApiError> {
    let (skip, limit) = (skip.unwrap_or(0), limit.unwrap_or(DEFAULT_LIMIT));
    let sort = Sort {
        field: (),
        direction: SortDirection::Ascending,
    };
    PageRequest::new(skip, limit, sort)
        .map(|_| (skip, limit))
        .map_err(page_error)
}

/// The 400 of a page request out of bounds, naming the parameter.
fn page_error(err: PageRequestError) -> ApiError {
    match err {
        PageRequestError::Limit => invalid("limit"),
        PageRequestError::Skip => invalid("skip"),
    }
}

impl ListQuery {
    pub(crate) fn page<F: SortKey>(&self) -> Result<PageRequest<F>, ApiError> {
        let (skip, limit) = skip_and_limit(self.skip, self.limit)?;
        let field = match self.sort_by.as_deref() {
            None => F::KEYS.first().map(|(_, f)| *f),
            Some(name) => F::KEYS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f),
        }
        .ok_or_else(|| invalid("sort_by"))?;
        let direction = match self.sort_order.as_deref() {
            None | Some("asc") => SortDirection::Ascending,
            Some("desc") => SortDirection::Descending,
            Some(_) => return Err(invalid("sort_order")),
        };
        PageRequest::new(skip, limit, Sort { field, direction }).map_err(page_error)
    }
}

/// A page as the response: the mapped items, and the total in `X-Total-Count`.
pub(crate) fn page_response<D, T: Serialize>(page: Page<D>, view: impl Fn(D) -> T) -> HttpResponse {
    let items: Vec<T> = page.items.into_iter().map(view).collect();
    HttpResponse::Ok()
        .insert_header((TOTAL_COUNT_HEADER, page.total.to_string()))
        .json(items)
}
