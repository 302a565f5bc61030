//! Bank: transfers. Fees and supply accounting live beside `apply_block` in lib.rs.

use crate::error::TxError;
use crate::{Ctx, Ledger};
use cairn_types::tx::Transfer;

impl Ledger {
    pub(crate) fn transfer(&mut self, ctx: &Ctx, body: &Transfer) -> Result<(), TxError> {
        if body.amount.is_zero() {
            return Err(TxError::ZeroAmount);
        }
        self.state.require_balance(&ctx.sender, body.amount)?;
        // Credit can only overflow past u128::MAX, which the supply cap rules out; check
        // anyway before debiting so a failure leaves nothing half-done.
        let to_balance = self.state.balance(&body.to);
        if ctx.sender != body.to && to_balance.checked_add(body.amount).is_none() {
            return Err(crate::error::overflow("transfer"));
        }
        self.state.debit(ctx.sender, body.amount)?;
        self.state.credit(body.to, body.amount)
    }
}
