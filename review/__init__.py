"""Engineers' review: a web application to confirm, reject or correct findings; decisions feed retraining."""
