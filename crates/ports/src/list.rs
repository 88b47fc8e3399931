/// The largest page a list may return.
pub const MAX_PAGE_SIZE: u64 = 100;
/// The largest offset a list accepts; deeper pages are refused rather than scanned.
pub const MAX_SKIP: u64 = 100_000;

/// Why a page request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageRequestError {
    #[error("limit must be between 1 and {MAX_PAGE_SIZE}")]
    Limit,
    #[error("skip must be at most {MAX_SKIP}")]
    Skip,
}

/// Which slice of a list to return, and in which order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest<F> {
    skip: u64,
    limit: u64,
    sort: Sort<F>,
}

impl<F: Copy> PageRequest<F> {
    pub fn new(skip: u64, limit: u64, sort: Sort<F>) -> Result<Self, PageRequestError> {
        if limit == 0 || limit > MAX_PAGE_SIZE {
            return Err(PageRequestError::Limit);
        }
        if skip > MAX_SKIP {
            return Err(PageRequestError::Skip);
        }
        Ok(Self { skip, limit, sort })
    }

    /// The first item in `sort`'s order: the page that also says how many there are.
    pub fn first(sort: Sort<F>) -> Self {
        Self {
            skip: 0,
            limit: 1,
            sort,
        }
    }

    pub fn skip(&self) -> u64 {
        self.skip
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn sort(&self) -> Sort<F> {
        self.sort
    }
}

/// Sort order of a list: a field of the listed entity and a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort<F> {
    pub field: F,
    pub direction: SortDirection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortDirection {
    #[default]
    Ascending,
    Descending,
}

/// One page of a list and the total number of items the whole list has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_requests_are_bounded() {
        let sort = Sort {
            field: (),
            direction: SortDirection::Ascending,
        };
        assert!(PageRequest::new(0, 1, sort).is_ok());
        assert!(PageRequest::new(MAX_SKIP, MAX_PAGE_SIZE, sort).is_ok());
        assert_eq!(PageRequest::new(0, 0, sort), Err(PageRequestError::Limit));
        assert_eq!(PageRequest::new(0, 101, sort), Err(PageRequestError::Limit));
        assert_eq!(
            PageRequest::new(0, u64::MAX, sort),
            Err(PageRequestError::Limit)
        );
        assert_eq!(
            PageRequest::new(MAX_SKIP + 1, 10, sort),
            Err(PageRequestError::Skip)
        );
    }
}
