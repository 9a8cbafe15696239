//! Infobip delivery status → Tidings status.

use tidings_core::{Failure, Status};

/// What an Infobip delivery report means, from `status.groupId` refined by `status.id` (the
/// names' casing varies between API versions, so ids come first and `groupName` is the
/// fallback when no `groupId` is sent). `None` for groups Infobip does not document.
///
/// | `groupId` (`groupName`) | `status.id` (`status.name`) | status | note |
/// |---|---|---|---|
/// | 1 `PENDING` | 26 `PENDING_ACCEPTED` | accepted | Infobip took the message, not yet sent to the operator |
/// | 1 `PENDING` | 3 `PENDING_WAITING_DELIVERY`, 7 `PENDING_ENROUTE`, others | sent | handed to the operator, no handset report yet |
/// | 2 `UNDELIVERABLE` | 4 `UNDELIVERABLE_REJECTED_OPERATOR`, 9 `UNDELIVERABLE_NOT_DELIVERED` | undelivered | left Infobip, the operator could not deliver |
/// | 3 `DELIVERED` | 5 `DELIVERED_TO_HANDSET` | delivered | |
/// | 3 `DELIVERED` | 2 `DELIVERED_TO_OPERATOR` | sent | the operator has it; it sends no handset report |
/// | 4 `EXPIRED` | 15 `EXPIRED_EXPIRED`, 29 `EXPIRED_DLR_UNKNOWN` | undelivered | validity period ran out; temporary |
/// | 5 `REJECTED` | 6, 8, 10 `REJECTED_DND`, 12 not enough credits, 51, 52, ... | rejected | refused before a delivery attempt |
///
/// `failure` for undelivered and rejected reports comes from `error.permanent` when Infobip
/// sends it; expiries without it are temporary, rejections permanent.
pub(crate) fn classify(
    group_id: Option<i64>,
    group_name: Option<&str>,
    status_id: Option<i64>,
    error_permanent: Option<bool>,
) -> Option<(Status, Option<Failure>)> {
    let group = group_id.or_else(|| group_from_name(group_name?))?;
    let failure = |default: Failure| {
        Some(match error_permanent {
            Some(true) => Failure::Permanent,
            Some(false) => Failure::Temporary,
            None => default,
        })
    };
    Some(match (group, status_id) {
        (1, Some(26)) => (Status::Accepted, None),
        (1, _) => (Status::Sent, None),
        (2, _) => (Status::Undelivered, failure(Failure::Permanent)),
        (3, Some(2)) => (Status::Sent, None),
        (3, _) => (Status::Delivered, None),
        (4, _) => (Status::Undelivered, failure(Failure::Temporary)),
        (5, _) => (Status::Rejected, failure(Failure::Permanent)),
        _ => return None,
    })
}

fn group_from_name(name: &str) -> Option<i64> {
    Some(match name.trim().to_ascii_uppercase().as_str() {
        "PENDING" => 1,
        "UNDELIVERABLE" => 2,
        "DELIVERED" => 3,
        "EXPIRED" => 4,
        "REJECTED" => 5,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_first_then_names() {
        assert_eq!(
            classify(Some(3), Some("Ok"), Some(2), None),
            Some((Status::Sent, None))
        );
        assert_eq!(
            classify(None, Some("delivered"), Some(5), None),
            Some((Status::Delivered, None))
        );
        assert_eq!(
            classify(Some(4), None, Some(15), Some(true)),
            Some((Status::Undelivered, Some(Failure::Permanent)))
        );
        assert_eq!(classify(Some(9), None, None, None), None);
        assert_eq!(classify(None, None, Some(5), None), None);
    }
}
