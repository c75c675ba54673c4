//! The grid of tiles: how many fit on one page, which tiles are on which page, and how many
//! columns a page has. Pure, so that it is tested natively.
//!
//! Your own tile is on every page; the others follow in the order they came, 24 a page. A tile
//! on another page is hidden, so its video is not sent to this browser at all (the SFU is told
//! the tile has no size) while its sound still plays.

/// Most tiles on one page, your own included: a grid of five by five.
pub const TILES_PER_PAGE: usize = 25;

/// Other people's tiles on one page.
const OTHERS_PER_PAGE: usize = TILES_PER_PAGE - 1;

/// How many pages `others` other people need (at least one).
pub fn pages(others: usize) -> usize {
    others.div_ceil(OTHERS_PER_PAGE).max(1)
}

/// Whether the `index`th other person (in the order they came) is on `page` (from 0).
pub fn on_page(index: usize, page: usize) -> bool {
    index / OTHERS_PER_PAGE == page
}

/// Tiles shown on `page`: your own and that page's share of the others.
pub fn shown(others: usize, page: usize) -> usize {
    1 + others.saturating_sub(page * OTHERS_PER_PAGE).min(OTHERS_PER_PAGE)
}

/// Columns for `tiles` tiles: the side of the smallest square that holds them.
pub fn columns(tiles: usize) -> usize {
    (1..=TILES_PER_PAGE).find(|side| side * side >= tiles).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_five_tiles_fit_on_a_page_and_the_rest_go_on_the_next() {
        assert_eq!(pages(0), 1);
        assert_eq!(pages(24), 1);
        assert_eq!(pages(25), 2);
        assert_eq!(pages(49), 3);
        assert_eq!(shown(0, 0), 1);
        assert_eq!(shown(5, 0), 6);
        assert_eq!(shown(27, 0), 25);
        assert_eq!(shown(27, 1), 4);
        assert_eq!(shown(27, 2), 1, "a page past the end has your own tile only");
        assert!(on_page(0, 0) && on_page(23, 0) && !on_page(24, 0));
        assert!(on_page(24, 1) && on_page(26, 1) && !on_page(26, 0));
    }

    #[test]
    fn columns_make_the_smallest_square() {
        let cols: Vec<usize> = [1, 2, 4, 5, 7, 9, 10, 16, 17, 25].into_iter().map(columns).collect();
        assert_eq!(cols, [1, 2, 2, 3, 3, 3, 4, 4, 5, 5]);
    }
}
