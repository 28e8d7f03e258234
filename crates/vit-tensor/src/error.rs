//! The error type shared by the kernel, layer and encoder crates.
//!
//! Every variant carries the values that were wrong, so that a message such as
//! `linear: input holds 10 elements, expected rows × in_features = 12` can be acted on
//! without a debugger.

use thiserror::Error;

/// Result alias used throughout `vit-tensor`, `vit-layers` and `vit-encoder`.
pub type TensorResult<T> = Result<T, TensorError>;

/// What can go wrong in a tensor operation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TensorError {
    /// A flat buffer does not hold the number of elements its shape calls for.
    #[error("{op}: {what} holds {got} elements, expected {expected}")]
    LengthMismatch {
        /// The operation that checked the buffer.
        op: &'static str,
        /// Which buffer (`"input"`, `"weight"`, …), with its shape formula.
        what: &'static str,
        /// Elements the shape calls for.
        expected: usize,
        /// Elements the buffer holds.
        got: usize,
    },
    /// Two dimensions that must agree do not (the inner dimension of a matmul, say).
    #[error("{op}: {what} differ: {left} vs {right}")]
    DimMismatch {
        /// The operation that compared them.
        op: &'static str,
        /// The two dimensions compared.
        what: &'static str,
        /// The first dimension.
        left: usize,
        /// The second dimension.
        right: usize,
    },
    /// A layer's weight has another shape than the layer it is put in needs.
    #[error("{op}: {what} has shape {got:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The operation that checked it.
        op: &'static str,
        /// Which weight.
        what: &'static str,
        /// The shape needed.
        expected: Vec<usize>,
        /// The shape found.
        got: Vec<usize>,
    },
    /// A strided matrix view reaches past the end of its buffer.
    #[error(
        "{op}: view of {rows}×{cols} with strides ({row_stride}, {col_stride}) needs {needed} elements, buffer has {len}"
    )]
    ViewOutOfBounds {
        /// The operation that built the view.
        op: &'static str,
        /// Rows of the view.
        rows: usize,
        /// Columns of the view.
        cols: usize,
        /// Distance between consecutive rows.
        row_stride: usize,
        /// Distance between consecutive columns.
        col_stride: usize,
        /// Elements the view needs (`None` when the computation overflows `usize`).
        needed: ViewExtent,
        /// Elements the buffer holds.
        len: usize,
    },
    /// An output view whose strides map two different positions onto one element.
    #[error(
        "{op}: output view {rows}×{cols} with strides ({row_stride}, {col_stride}) overlaps itself"
    )]
    OverlappingOutput {
        /// The operation that built the view.
        op: &'static str,
        /// Rows of the view.
        rows: usize,
        /// Columns of the view.
        cols: usize,
        /// Distance between consecutive rows.
        row_stride: usize,
        /// Distance between consecutive columns.
        col_stride: usize,
    },
    /// An argument outside the range the operation accepts.
    #[error("{op}: {what} = {value} is invalid: {reason}")]
    InvalidArgument {
        /// The operation that checked it.
        op: &'static str,
        /// The argument's name.
        what: &'static str,
        /// The value given, rendered.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A size computation (`rows × cols`, …) overflows `usize`.
    #[error("{op}: size of {what} overflows usize")]
    SizeOverflow {
        /// The operation that computed the size.
        op: &'static str,
        /// What was being sized.
        what: &'static str,
    },
}

/// The number of elements a strided view needs, or an overflow marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewExtent {
    /// The view needs this many elements.
    Elements(usize),
    /// The extent does not fit in `usize`.
    Overflow,
}

impl std::fmt::Display for ViewExtent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ViewExtent::Elements(n) => write!(f, "{n}"),
            ViewExtent::Overflow => f.write_str("more than usize::MAX"),
        }
    }
}

/// Checks that `buffer_len == expected`, or says which buffer of which op is wrong.
pub fn check_len(
    op: &'static str,
    what: &'static str,
    expected: usize,
    buffer_len: usize,
) -> TensorResult<()> {
    if expected == buffer_len {
        Ok(())
    } else {
        Err(TensorError::LengthMismatch {
            op,
            what,
            expected,
            got: buffer_len,
        })
    }
}

/// `a × b`, or [`TensorError::SizeOverflow`].
pub fn checked_mul(
    op: &'static str,
    what: &'static str,
    a: usize,
    b: usize,
) -> TensorResult<usize> {
    a.checked_mul(b)
        .ok_or(TensorError::SizeOverflow { op, what })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_wrong_values() {
        let err = check_len("linear", "input [rows, in_features]", 12, 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "linear: input [rows, in_features] holds 10 elements, expected 12"
        );
        let err = checked_mul("x", "y", usize::MAX, 2).unwrap_err();
        assert_eq!(err, TensorError::SizeOverflow { op: "x", what: "y" });
    }
}
