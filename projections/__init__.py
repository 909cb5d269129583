"""Projections: the read tables as a function of the event log.

calls, sms, recordings, reports, model, registry   pure functions, no I/O
runner, store, status      shared I/O: applying a batch, reading and writing rows, where each stands
live/                      the live projector: the leader, its batches, the joint step
rebuild/                   shadow tables, replays, fill processes, progress, the swap
"""
