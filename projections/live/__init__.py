"""The live projector: the leader, its batches and the joint step."""
