{ 'app.kubernetes.io/part-of': 'guestbook' }
