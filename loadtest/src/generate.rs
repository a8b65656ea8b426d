//! `generate`: on-sale arrival queues (to be written by a helper).
