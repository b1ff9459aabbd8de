(function () {
  const filter = document.getElementById('feature-filter');
  const sorter = document.getElementById('feature-sort');
  function apply() {
    const text = filter.value.trim().toLowerCase();
    document.querySelectorAll('table.feat').forEach(table => {
      const bodies = Array.from(table.querySelectorAll('tbody.f'));
      const key = sorter.value;
      bodies.sort((a, b) => key === 'name' ? a.dataset.name.localeCompare(b.dataset.name)
                                           : parseFloat(b.dataset[key]) - parseFloat(a.dataset[key]));
      bodies.forEach(body => {
        body.style.display = body.dataset.name.toLowerCase().includes(text) ? '' : 'none';
        table.appendChild(body);
      });
    });
    const shown = document.querySelectorAll('tbody.f:not([style*="none"])').length;
    document.getElementById('feature-count').textContent = shown + ' columns shown';
  }
  filter.addEventListener('input', apply);
  sorter.addEventListener('change', apply);
  apply();
})();
