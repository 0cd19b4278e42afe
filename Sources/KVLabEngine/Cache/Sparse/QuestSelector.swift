import KVLabMethods

/// Quest: bound each quest page's best score by its keys' channel-wise min and max
/// (`PageSummaries`), and read only the newest page and the `questPages` best others.
final class QuestSelector: SparseSelector {
    /// Cache pages per quest page, and quest pages read besides the newest.
    let pagesPerQuestPage: Int
    let questPages: Int

    init(pagesPerQuestPage: Int, questPages: Int) {
        self.pagesPerQuestPage = pagesPerQuestPage
        self.questPages = questPages
    }

    func select(_ step: SparseStep, attention: CacheAttention, log: StepReadLog, ledger: inout IOLedger) -> Int {
        let store = attention.store, hd = store.layout.headDim, group = store.layout.groupSize, pageSize = PageStore.pageSize
        let index = step.index, visible = step.visible, q = step.queries
        let bounds = attention.sortScratch, marks = attention.selectedMarks
        let physicalPages = (visible + pageSize - 1) / pageSize
        let groups = (physicalPages + pagesPerQuestPage - 1) / pagesPerQuestPage
        if step.scoring { attention.maskScores(visible: visible) }
        guard groups > 0 else { return 0 }
        for quest in 0..<groups {
            var bound = -Float.infinity
            for page in (quest * pagesPerQuestPage)..<min(physicalPages, (quest + 1) * pagesPerQuestPage) {
                let (lo, hi) = store.summaries.bounds(index: index, page: page)
                var sum: Float = 0
                for g in 0..<group {
                    let query = q + g * hd
                    for c in 0..<hd { sum += max(query[c] * lo[c], query[c] * hi[c]) }
                }
                bound = max(bound, sum)
            }
            bounds[quest] = bound
        }
        ledger.read(.policyState, physicalPages * 2 * hd * 4)
        // The newest page always; then the best bounds (ties: the older page).
        let newest = groups - 1
        for quest in 0..<groups { marks[quest] = quest == newest }
        var chosen = 1
        while chosen < min(questPages + 1, groups) {
            var best = -1
            for quest in 0..<groups where !marks[quest] && (best < 0 || bounds[quest] > bounds[best]) { best = quest }
            marks[best] = true
            chosen += 1
        }
        var n = 0
        for quest in 0..<groups where marks[quest] {
            let pages = (quest * pagesPerQuestPage)..<min(physicalPages, (quest + 1) * pagesPerQuestPage)
            if step.scoring { attention.scorePages(index: index, queries: q, pages: pages) }
            for slot in (pages.lowerBound * pageSize)..<min(visible, pages.upperBound * pageSize) {
                attention.selectedSlots[n] = Int32(slot)
                n += 1
            }
        }
        // Lanes past the last visible slot of the newest page are not entries.
        for g in 0..<group where step.scoring {
            for slot in visible..<(physicalPages * pageSize) { attention.probabilities[g * attention.scoreStride + slot] = CacheAttention.masked }
        }
        return n
    }
}
