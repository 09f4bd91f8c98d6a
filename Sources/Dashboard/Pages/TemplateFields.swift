import Mustache

/// A view the templates read by name. Mustache asks `child(named:)` of a `MustacheParent`
/// instead of reflecting the value with `Mirror`, which cost about 20 µs a lookup: a profile
/// with 1,000 keys (some 20,000 lookups) took 400 ms to render, and takes a few ms this way
/// (`bench-pages`, bench/README.md). Each view answers its stored properties in `field(_:)`;
/// in debug builds — every test — a property a template asks for and `field(_:)` forgets
/// stops the process, so a page never silently renders a blank.
protocol TemplateView: MustacheParent {
    /// The stored property `name`, or nil for a name this view does not have (Mustache then
    /// looks further up the context stack) or a nil optional.
    func field(_ name: String) -> Any?
}

extension TemplateView {
    func child(named name: String) -> Any? {
        let value = field(name)
        assert(value != nil || !Self.stores(name, in: self), "\(Self.self).field(_:) does not answer \(name)")
        return value
    }

    /// Whether `view` has a stored property `name` holding a value (debug checks only).
    static func stores(_ name: String, in view: Self) -> Bool {
        Mirror(reflecting: view).children.contains { child in
            guard child.label == name else { return false }
            let mirror = Mirror(reflecting: child.value)
            return mirror.displayStyle != .optional || !mirror.children.isEmpty
        }
    }
}

extension LayoutView: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "signedIn": self.signedIn
        case "name": self.name
        case "isAdmin": self.isAdmin
        case "csrfToken": self.csrfToken
        case "version": self.version
        case "onProfile": self.onProfile
        case "onClients": self.onClients
        case "onChat": self.onChat
        case "onUsers": self.onUsers
        default: nil
        }
    }
}

extension LoginPage: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "layout": self.layout
        case "message": self.message
        case "email": self.email
        case "next": self.next
        case "notice": self.notice
        case "token": self.token
        default: nil
        }
    }
}

extension InvitePage: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "layout": self.layout
        case "message": self.message
        case "token": self.token
        default: nil
        }
    }
}

extension ErrorPage: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "layout": self.layout
        case "heading": self.heading
        case "message": self.message
        default: nil
        }
    }
}

extension PoolView: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "title": self.title
        case "refillTitle": self.refillTitle
        case "text": self.text
        case "exhausted": self.exhausted
        case "hasLimit": self.hasLimit
        case "limit": self.limit
        case "percent": self.percent
        case "refill": self.refill
        case "nextRefillAt": self.nextRefillAt
        default: nil
        }
    }
}

extension ProfileView: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "name": self.name
        case "email": self.email
        case "emailParts": self.emailParts
        case "avatarURL": self.avatarURL
        case "initials": self.initials
        case "groups": self.groups
        case "coinsUsed": self.coinsUsed
        case "tokensUsed": self.tokensUsed
        case "favoriteModel": self.favoriteModel
        case "pool": self.pool
        case "webChat": self.webChat
        default: nil
        }
    }
}

extension WebChatView: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "conversations": self.conversations
        case "requests": self.requests
        case "tokens": self.tokens
        case "coins": self.coins
        case "lastUsedAt": self.lastUsedAt
        default: nil
        }
    }
}

extension UsageCells: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "requests": self.requests
        case "requestsValue": self.requestsValue
        case "tokens": self.tokens
        case "tokensValue": self.tokensValue
        case "coins": self.coins
        case "costValue": self.costValue
        case "lastUsedAt": self.lastUsedAt
        case "lastUsedValue": self.lastUsedValue
        default: nil
        }
    }
}

extension KeyTableView: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "createURL": self.createURL
        case "canCreate": self.canCreate
        case "action": self.action
        case "columns": self.columns
        case "rows": self.rows
        case "hasRows": self.hasRows
        case "empty": self.empty
        case "query": self.query
        case "showDeleted": self.showDeleted
        case "sort": self.sort
        case "order": self.order
        case "pager": self.pager
        default: nil
        }
    }
}

extension KeyTableView.Column: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "label": self.label
        case "href": self.href
        case "ariaSort": self.ariaSort
        default: nil
        }
    }
}

extension KeyTableView.Pager: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "summary": self.summary
        case "previous": self.previous
        case "next": self.next
        default: nil
        }
    }
}

extension KeyRowView: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "id": self.id
        case "name": self.name
        case "label": self.label
        case "hint": self.hint
        case "usage": self.usage
        case "revoked": self.revoked
        case "url": self.url
        default: nil
        }
    }
}

extension ModelTableView: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "rows": self.rows
        case "forClient": self.forClient
        case "hasRows": self.hasRows
        default: nil
        }
    }
}

extension ModelRowView: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "model": self.model
        case "link": self.link
        case "usage": self.usage
        case "access": self.access
        case "accessLabel": self.accessLabel
        case "accessClass": self.accessClass
        case "needsConsent": self.needsConsent
        case "consentURL": self.consentURL
        case "status": self.status
        case "statusClass": self.statusClass
        case "disabled": self.disabled
        default: nil
        }
    }
}

extension ProfilePage: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "layout": self.layout
        case "profile": self.profile
        case "keys": self.keys
        case "models": self.models
        default: nil
        }
    }
}

extension ClientsPage: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "layout": self.layout
        case "isAdmin": self.isAdmin
        case "rows": self.rows
        case "hasRows": self.hasRows
        default: nil
        }
    }
}

extension ClientsPage.Row: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "name": self.name
        case "description": self.description
        case "link": self.link
        case "managers": self.managers
        case "status": self.status
        case "statusClass": self.statusClass
        default: nil
        }
    }
}

extension ClientPage: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "layout": self.layout
        case "isAdmin": self.isAdmin
        case "client": self.client
        case "tokens": self.tokens
        case "coinsSpent": self.coinsSpent
        case "pool": self.pool
        case "managers": self.managers
        case "hasManagers": self.hasManagers
        case "managersURL": self.managersURL
        case "keys": self.keys
        case "models": self.models
        default: nil
        }
    }
}

extension ClientPage.Client: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "id": self.id
        case "name": self.name
        case "description": self.description
        case "active": self.active
        case "status": self.status
        case "statusClass": self.statusClass
        case "url": self.url
        default: nil
        }
    }
}

extension ClientPage.Manager: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "id": self.id
        case "name": self.name
        case "email": self.email
        case "removeURL": self.removeURL
        default: nil
        }
    }
}

extension ModelPage: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "layout": self.layout
        case "model": self.model
        default: nil
        }
    }
}

extension ModelPage.Model: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "name": self.name
        case "vendor": self.vendor
        case "description": self.description
        case "scenes": self.scenes
        case "status": self.status
        case "statusClass": self.statusClass
        case "accessLabel": self.accessLabel
        case "accessClass": self.accessClass
        case "needsConsent": self.needsConsent
        case "consentURL": self.consentURL
        case "prices": self.prices
        case "backends": self.backends
        case "hasBackends": self.hasBackends
        default: nil
        }
    }
}

extension ModelPage.Price: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "label": self.label
        case "coins": self.coins
        case "usd": self.usd
        default: nil
        }
    }
}

extension ModelPage.Backend: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "id": self.id
        case "provider": self.provider
        case "health": self.health
        case "healthClass": self.healthClass
        default: nil
        }
    }
}

extension UsersPage: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "layout": self.layout
        case "query": self.query
        case "rows": self.rows
        case "hasRows": self.hasRows
        case "total": self.total
        case "shown": self.shown
        case "more": self.more
        case "groupOptions": self.groupOptions
        case "hasGroups": self.hasGroups
        default: nil
        }
    }
}

extension UsersPage.Row: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "id": self.id
        case "name": self.name
        case "email": self.email
        case "groups": self.groups
        case "groupIDs": self.groupIDs
        case "isAdmin": self.isAdmin
        case "active": self.active
        case "status": self.status
        case "statusClass": self.statusClass
        case "url": self.url
        default: nil
        }
    }
}

extension UsersPage.GroupOption: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "id": self.id
        case "name": self.name
        default: nil
        }
    }
}

extension ChatPage: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "layout": self.layout
        case "conversationID": self.conversationID
        case "conversations": self.conversations
        case "hasConversations": self.hasConversations
        case "models": self.models
        case "hasModels": self.hasModels
        case "messages": self.messages
        default: nil
        }
    }
}

extension ChatPage.Item: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "id": self.id
        case "title": self.title
        case "current": self.current
        default: nil
        }
    }
}

extension ChatPage.Option: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "name": self.name
        case "selected": self.selected
        default: nil
        }
    }
}

extension ChatPage.Message: TemplateView {
    func field(_ name: String) -> Any? {
        switch name {
        case "role": self.role
        case "content": self.content
        default: nil
        }
    }
}
