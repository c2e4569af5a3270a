"""Trainer worker: dataset sync, tf.data pipeline, Keras model builder, two-step training,
evaluation and artifacts. The training core knows nothing of leases or gRPC; the worker loop
(added separately) adapts the optimizer's API to :class:`trainer_svc.progress.Reporter`."""
